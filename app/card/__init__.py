"""Smartcards: pure APDU/TLV encoding, the PIV protocol, the PC/SC adapter and the training card. No Qt, no HTTP."""
