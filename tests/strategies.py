"""Hypothesis strategies shared by the fuzz tests of the input files."""

from hypothesis import strategies as st


def json_like(
    words: st.SearchStrategy[str],
    *,
    int_bound: int,
    keys: st.SearchStrategy[str],
    max_keys: int,
    max_leaves: int,
) -> st.SearchStrategy:
    """Nested lists and mappings (what YAML or JSON can hold) of scalars: None, booleans,
    integers up to ``int_bound`` either way, any float, short text and ``words``."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-int_bound, max_value=int_bound)
        | st.floats()
        | st.text(max_size=20)
        | words
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=max_keys),
        max_leaves=max_leaves,
    )
