"""HTTP layer: routers, their request/response models, dependencies and error handlers."""
