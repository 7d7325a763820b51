"""Teacher annotation: prompts, the pure reply parser, the response cache, the engine and the backends."""
