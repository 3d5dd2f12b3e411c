"""The discord.py bot: classification, corrections and moderation cogs, persistent views, checks."""
