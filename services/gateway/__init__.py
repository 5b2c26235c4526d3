"""The gateway: the public API. Authenticates callers, owns API tokens and projects, and
forwards the registry's paths to the registry service with the caller as the actor."""
