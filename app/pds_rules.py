"""PDS search rules both ends apply: what a demographic search must give at least (PDS's minimum combinations) and
the genders it takes. The service (``app.service``, which answers 400 INVALID_SEARCH_DATA) and the client's search
form (``app.ui``, which says what is missing before asking) both import this module; neither imports the other."""

from __future__ import annotations

GENDERS = ("male", "female", "other", "unknown")


def meets_minimum(*, fuzzy: bool, family: bool, given: bool, gender: bool, postcode: bool) -> bool:
    """Whether a search with a birth date (always required) gives enough besides: a non-fuzzy search needs the
    family name; a fuzzy one needs given + family, or one of them with gender and postcode."""
    if not fuzzy:
        return family
    return (given and family) or (gender and postcode and (family or given))
