"""The paper contract: the paper's requirements, each grounded by a checked quote.

See README.md. ``schema`` (records), ``quotes`` (is a quote in the paper), ``extract`` (the
extraction calls, section groups, merge), ``stage`` (the run's stage and the planning hooks).
"""

from papercoder.requirements.quotes import QuoteIndex, skeleton
from papercoder.requirements.schema import CATEGORIES, Contract, Requirement, load_contract

__all__ = ["CATEGORIES", "Contract", "QuoteIndex", "Requirement", "load_contract", "skeleton"]
