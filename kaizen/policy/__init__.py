"""The variant portfolio: Thompson sampling over the variants of each role (symbol, regime, style).

`ThompsonPortfolio` is the Cython bandit (kaizen.ext.thompson; the model, discounting and prior are
documented there); kaizen.policy.reference has the same algorithm in plain Python. `RolePortfolio`
wraps one role's bandit for the engine: variant ids, `flat` as variant 0, retirement and entry,
risk caps for candidates, and lineage records.
"""

from kaizen.ext.thompson import ThompsonPortfolio
from kaizen.policy.portfolio import RolePortfolio, role_seed
from kaizen.policy.roles import FLAT, Role, Variant, build_roles

__all__ = ["FLAT", "Role", "RolePortfolio", "ThompsonPortfolio", "Variant", "build_roles", "role_seed"]
