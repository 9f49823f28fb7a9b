"""TensorRT in one place: build plans and sidecars (plan), importing TensorRT / CUDA (loader), building
engines (build, used by export), running them (engine, a runtime backend)."""
