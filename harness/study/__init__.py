"""Human study: export a rating kit, import votes, and score plausibility and fooling rates."""
