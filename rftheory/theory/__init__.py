"""Theory checks: Hermite coefficients, identifiability statements, sign diagnostics, finite-width bounds, span geometry."""
