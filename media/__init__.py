"""Bytes to pixels, with no database: SSRF-safe fetching, safe decoding with limits, anime face
finding, boxes and perceptual hashes. Shared by the bot, the scraper, the trainer and the CLI."""
