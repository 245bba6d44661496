"""The `science` vocabulary of the `spelling` criterion: standard mathematical and scientific
names that an English word list lacks ("arccos", "eigenvector", "quantile").

Two sources: the names of the functions in the installed `math`, `cmath` and `statistics`
modules and numpy's universal functions (`acos`, `arccos`, `hypot`, `cbrt`, `lgamma`; the names
that are one word, so snake_case identifiers stay code), and the short list below of standard
terms no library names: inverse trigonometric words, linear algebra, probability, units. Each
is a textbook name, not one suite's word.
"""

from __future__ import annotations

import re

_NAME = re.compile(r"[a-z]+")  # one lower-case word: snake_case and classes are code

TERMS = """
arcsine arccosine arctangent arcsecant arccosecant arccotangent versine signum
eigenvector eigenvectors eigendecomposition eigenspace hermitian laplacian diagonalizable
nilpotent bijective surjective injective surjection monoid semigroup abelian infimum supremum
exponentiate exponentiated exponentiating
multiset powerset primality totient circumcircle incircle tesseract argmax argmin
lognormal multinomial hypergeometric quantile quantiles softmax logit probit combinatorics
stdev bivariate univariate heteroscedastic homoscedastic weibull chebyshev hadamard maclaurin
raphson collatz
femtosecond femtoseconds picosecond picoseconds
kibibyte kibibytes mebibyte mebibytes gibibyte gibibytes tebibyte tebibytes zettabyte
"""


def science_words() -> frozenset[str]:
    import cmath
    import math
    import statistics

    import numpy as np

    names = {n for m in (math, cmath, statistics) for n in dir(m) if not n.startswith("_")}
    names |= {n for n in dir(np) if isinstance(getattr(np, n, None), np.ufunc)}
    library = {n for n in names if _NAME.fullmatch(n)}
    return frozenset(library | set(TERMS.split()))
