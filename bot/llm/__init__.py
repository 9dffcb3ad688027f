"""The LLaMA-2 model: prompt layout, the ctransformers engine, and the worker process that runs it."""
