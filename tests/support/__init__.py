"""Helpers shared by every test folder: free loopback ports, polling waits, model builders."""
