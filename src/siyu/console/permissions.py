"""Who may do what in the console: one table of permissions → roles, checked on the server by the
`Allowed` dependency of every route (siyu.console.auth). Data scopes (brand, store, own customers)
narrow what a permitted role sees; see siyu.console.scope."""

from __future__ import annotations

ROLES = ("group_admin", "brand_admin", "analyst", "operator", "store_manager", "guide", "auditor")

ADMINS = frozenset({"group_admin", "brand_admin"})
_READERS = ADMINS | {"analyst", "operator"}

PERMISSIONS: dict[str, frozenset[str]] = {
    "overview.view": _READERS | {"store_manager"},
    "customers.view": _READERS | {"store_manager", "guide"},
    # Unmasked phone / e-mail / name / member numbers: never analysts (they build audiences on masked data).
    "customers.pii": ADMINS | {"operator", "store_manager", "guide"},
    "customers.tag": ADMINS | {"operator", "store_manager", "guide"},
    "audiences.view": _READERS,
    "audiences.edit": _READERS,
    "audiences.export": ADMINS | {"operator"},
    "tags.view": _READERS,
    "loyalty.view": _READERS,
    "loyalty.edit": ADMINS | {"operator"},
    "imports.view": ADMINS,
    "imports.edit": ADMINS,
    "settings.view": ADMINS,
    "keys.edit": ADMINS,
    "users.edit": ADMINS,
    "audit.view": frozenset({"auditor", "group_admin"}),
    "journeys.view": _READERS,
    "journeys.edit": ADMINS | {"operator"},  # pause / resume
    "guides.view": _READERS | {"store_manager"},  # performance, stores, tasks, channel codes (a manager: its store)
    "tasks.done": ADMINS | {"operator", "store_manager", "guide"},
    "qrcodes.edit": ADMINS | {"operator"},
    "workbench.view": frozenset({"guide", "store_manager"}),
}

# The navigation: (permission, path, message id), in menu order. Adding a page = one line here, one
# router in siyu.console.pages, one template (docs/console.md).
NAV: tuple[tuple[str, str, str], ...] = (
    ("overview.view", "/console/overview", "nav.overview"),
    ("customers.view", "/console/customers", "nav.customers"),
    ("audiences.view", "/console/audiences", "nav.audiences"),
    ("workbench.view", "/console/workbench", "nav.workbench"),
    ("tags.view", "/console/tags", "nav.tags"),
    ("loyalty.view", "/console/loyalty", "nav.loyalty"),
    ("journeys.view", "/console/journeys", "nav.journeys"),
    ("guides.view", "/console/guides", "nav.guides"),
    ("guides.view", "/console/guides/tasks", "nav.tasks"),
    ("guides.view", "/console/guides/qrcodes", "nav.qrcodes"),
    ("imports.view", "/console/imports", "nav.imports"),
    ("settings.view", "/console/settings", "nav.settings"),
    ("audit.view", "/console/audit", "nav.audit"),
)


def allows(role: str, permission: str) -> bool:
    return role in PERMISSIONS[permission]


def home_of(role: str) -> str:
    """The first page the role may open (where `/console` sends it after signing in)."""
    return next(path for perm, path, _ in NAV if allows(role, perm))
