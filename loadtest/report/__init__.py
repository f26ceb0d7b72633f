"""What a load run leaves behind: scraped metrics, nginx log figures, Redis checks, charts."""
