"""Platform adapters: each translates one platform's events into core types and back, nothing else."""
