"""HTTP routes, one router per resource: predict, health, model, metrics."""
