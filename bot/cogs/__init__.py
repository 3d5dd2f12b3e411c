"""One cog per feature, each a discord.py extension with its own `setup(bot)`."""
