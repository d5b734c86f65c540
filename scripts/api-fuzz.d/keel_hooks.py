"""Schemathesis hooks for Keel's API: how to send a journey.toml.

Schemathesis has no serializer for application/toml; the journey check
answers any text (valid or not) with its diagnostics, so a string drawn
from the schema is sent as it is.
"""

from hypothesis import strategies as st

import schemathesis

TOML = st.one_of(
    st.text(min_size=1).filter(lambda s: s.strip()),
    st.sampled_from(['[journey]\nname = "x"\n', "x = 1\n", "[[stages]]\nid = 1\n"]),
).map(lambda s: s.encode("utf-8"))

schemathesis.openapi.media_type("application/toml", TOML)
