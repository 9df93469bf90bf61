"""encrypt connection secrets stored in plain text

Revision ID: 0002_encrypt_connection_secrets
Revises: 0001
Create Date: 2026-12-02 21:00:00

A data migration (issue 11): databases made before secrets were encrypted hold every
connection's secret fields in plain text in ``connections.config``. Each secret field (as the
installed channel's schema declares it) is encrypted with the hub's key, which is created on
first use (see hub_core.crypto). A connection whose channel is not installed is left as it is;
the first operation on it once its plugin is installed encrypts it (or ``hub secrets
rotate-key``). Downgrading
decrypts every value again (it needs the key).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from hub_core.crypto import SecretCodec, has_encrypted, plain_secrets
from hub_core.services.secrets import installed_secret_keys

revision = "0002_encrypt_connection_secrets"
down_revision = "0001"
branch_labels = None
depends_on = None

connections = sa.table(
    "connections",
    sa.column("id", sa.Integer),
    sa.column("name", sa.String),
    sa.column("channel", sa.String),
    sa.column("config", sa.JSON),
)


def _rows() -> list[sa.Row]:
    return list(op.get_bind().execute(sa.select(connections).order_by(connections.c.id)))


def _codec(rows: list[sa.Row]) -> SecretCodec:
    # Rows already encrypted mean a key exists somewhere: never replace it with a new one.
    return SecretCodec(lambda: has_encrypted(row.config for row in rows))


def upgrade() -> None:
    rows = _rows()
    if not rows:
        return  # a new database: nothing to encrypt, and no plugin needs loading
    secret_map = installed_secret_keys()
    codec = _codec(rows)
    for row in rows:
        keys = secret_map.get(row.channel, ())
        if plain_secrets(row.config, keys):
            op.get_bind().execute(
                sa.update(connections)
                .where(connections.c.id == row.id)
                .values(config=codec.seal(row.config, keys))
            )


def downgrade() -> None:
    rows = _rows()
    codec = _codec(rows)
    for row in rows:
        if has_encrypted([row.config]):
            op.get_bind().execute(
                sa.update(connections)
                .where(connections.c.id == row.id)
                .values(config=codec.open(row.config, f"connection {row.name!r}"))
            )
