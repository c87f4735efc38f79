"""The shared store: models, settings, sessions and the domain logic both planes use."""

from models.async_job import AsyncAttempt, AsyncJob
from models.base import Base, isoformat_z, utcnow
from models.client import Client, Membership
from models.config_version import ConfigState, current_config_version
from models.credential import Credential
from models.credential_grant import CredentialGrant, OAuthAuthorization
from models.credit import ClientBudget, CreditEntry, ProxyPrice
from models.invite import Invite
from models.meter import Meter, MeterUsage
from models.notification import Notification, NotificationRead
from models.notifier import Notifier, NotifierDelivery
from models.payload_filter import PayloadFilter
from models.pool import (
    PoolAccount,
    PoolApiKey,
    PoolCheck,
    PoolCreditTransaction,
    PoolLease,
    PoolProxy,
    PoolSource,
)
from models.proxy import Proxy
from models.request_log import RequestLog
from models.rule import Rule
from models.sign_in_throttle import SignInFailure
from models.target import Target
from models.telemetry import (
    MetricPoint,
    MetricPointLatency,
    MetricTotal,
    TelemetryCounter,
    TelemetryWatermark,
)
from models.user import User, UserToken
from models.web_session import WebSession

__all__ = [
    "AsyncAttempt",
    "AsyncJob",
    "Base",
    "Client",
    "ClientBudget",
    "ConfigState",
    "Credential",
    "CredentialGrant",
    "CreditEntry",
    "Invite",
    "Membership",
    "Meter",
    "MeterUsage",
    "MetricPoint",
    "MetricPointLatency",
    "MetricTotal",
    "Notification",
    "NotificationRead",
    "Notifier",
    "NotifierDelivery",
    "OAuthAuthorization",
    "PayloadFilter",
    "PoolAccount",
    "PoolApiKey",
    "PoolCheck",
    "PoolCreditTransaction",
    "PoolLease",
    "PoolProxy",
    "PoolSource",
    "Proxy",
    "ProxyPrice",
    "RequestLog",
    "Rule",
    "SignInFailure",
    "Target",
    "TelemetryCounter",
    "TelemetryWatermark",
    "User",
    "UserToken",
    "WebSession",
    "current_config_version",
    "isoformat_z",
    "utcnow",
]
