"""Real-time and batch translation: sources, sinks, backends and the pipeline between them."""
