"""The engines the engine tests run on; llama.cpp only where its optional extra is installed."""

from __future__ import annotations

import pytest


def llama_cpp_missing() -> str | None:
    """Why the llama.cpp engine cannot be tested here, or None when it can."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError as e:
        return (
            f"llama-cpp-python is not importable ({e}); it is the optional extra "
            "`pip install 'scopebot[llamacpp]'`, which CI does not install"
        )
    return None


LLAMA_CPP_MISSING = llama_cpp_missing()

#: Marks a test that needs the llama.cpp engine.
needs_llama_cpp = pytest.mark.skipif(LLAMA_CPP_MISSING is not None, reason=LLAMA_CPP_MISSING or "")

#: Parameters for `@pytest.fixture(params=ENGINES)`: every engine, llama.cpp skipped with the reason.
ENGINES = ["ctransformers", pytest.param("llama.cpp", marks=needs_llama_cpp)]
