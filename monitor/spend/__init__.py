"""What probing costs: prices, the daily budget, and the forecast."""
