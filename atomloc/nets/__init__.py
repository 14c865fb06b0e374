"""Learned locators (PyTorch): AtomSegNet-style U-Net and AtomID-net."""
