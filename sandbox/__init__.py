"""Offline stand-ins that speak the real protocols: synthetic characters, a fake Reddit API and a
fake Discord gateway + REST, all on 127.0.0.1. Imports nothing of ours but what it drives."""
