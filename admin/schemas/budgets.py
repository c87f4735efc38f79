"""Budgets: balances, ledger entries, grants, thresholds and proxy prices.

Amounts travel as decimal strings with six decimals (`"1.250000"`); input may be
a string or a number with at most six decimals.
"""

from __future__ import annotations

from marshmallow import ValidationError, fields, validate

from admin.schemas.common import ApiSchema, Timestamp
from models.credit import MAX_AMOUNT_MICRO, format_credits, parse_credits

MAX_PAGE = 1000


class Credits(fields.Field):
    """An exact amount of credits, held as integer micro-credits."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else format_credits(value)

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return parse_credits(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class PositiveCredits(Credits):
    def _deserialize(self, value, attr, data, **kwargs):
        micro = super()._deserialize(value, attr, data, **kwargs)
        if micro == 0:
            raise ValidationError("Must be greater than 0.")
        return micro


class BudgetSchema(ApiSchema):
    """A client's budget: balance (the sum of its ledger) and low-budget threshold."""

    clientId = fields.String(attribute="client_id", dump_only=True)
    balance = Credits(dump_only=True)
    lowBudgetThreshold = Credits(attribute="low_threshold", required=True)
    lowBudget = fields.Boolean(attribute="low", dump_only=True)


class EntrySchema(ApiSchema):
    """One ledger entry: a grant (positive) or a debit (negative)."""

    entryId = fields.Integer(attribute="id", dump_only=True)
    clientId = fields.String(attribute="client_id", dump_only=True)
    kind = fields.String(dump_only=True)
    amount = Credits(attribute="amount_micro", dump_only=True)
    description = fields.String(dump_only=True)
    createdBy = fields.String(attribute="created_by", dump_only=True)
    proxyId = fields.String(attribute="proxy_id", dump_only=True)
    requestId = fields.String(attribute="request_id", dump_only=True)
    createdAt = Timestamp(attribute="created_at", dump_only=True)


class GrantSchema(ApiSchema):
    """A grant: a positive amount of credits, with an optional description."""

    amount = PositiveCredits(required=True)
    description = fields.String(load_default="", validate=validate.Length(max=500))


class EntryQuerySchema(ApiSchema):
    """A page of entries, newest first: up to `limit`, older than entry `before`."""

    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=MAX_PAGE))
    before = fields.Integer(validate=validate.Range(min=1, max=2**62))


class PriceSchema(ApiSchema):
    """A proxy's price: per request, and per `meterUnitSize` meter units (e.g. 0.002 per 1000)."""

    proxyId = fields.String(attribute="proxy_id", dump_only=True)
    perRequest = Credits(attribute="per_request_micro", required=True)
    perMeterUnits = Credits(attribute="per_units_micro", load_default=0)
    meterUnitSize = fields.Integer(
        attribute="unit_size",
        load_default=1,
        strict=True,
        validate=validate.Range(min=1, max=MAX_AMOUNT_MICRO),
    )
