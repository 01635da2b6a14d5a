"""Every module that declares store tables: importing them registers the tables on Base.metadata
(used by the Alembic environment and by the migrations-match-models test)."""

from siyu.api import ratelimit as ratelimit_models
from siyu.audiences import models as audience_models
from siyu.audit import models as audit_models
from siyu.console import models as console_models
from siyu.events import outbox as outbox_models
from siyu.guides import models as guide_models
from siyu.journeys import models as journey_models
from siyu.loyalty import models as loyalty_models
from siyu.messaging import ledger_models as messaging_ledger_models
from siyu.messaging import models as messaging_models
from siyu.privacy import models as privacy_models
from siyu.wecom import models as wecom_models

REGISTERED = (
    ratelimit_models,
    audience_models,
    audit_models,
    guide_models,
    journey_models,
    loyalty_models,
    messaging_models,
    messaging_ledger_models,
    outbox_models,
    wecom_models,
    console_models,
    privacy_models,
)
