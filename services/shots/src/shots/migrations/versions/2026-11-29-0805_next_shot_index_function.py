"""next_shot_index: a project's lock and the index after its last shot, in one call

A shot is appended by one statement in autocommit (the shot and its event): this function,
called by that statement, takes the project replica's row lock, which serialises the writers of
one project's shot order, and only then reads the last index. A VOLATILE PL/pgSQL function
takes a fresh snapshot for each of its statements, so a writer that waited for the lock counts
the shot of the writer it waited for; a plain subquery would read the statement's own snapshot,
taken before the wait. NULL when the project is not in the replica, not ``p_owner``'s, or
deleted: the caller then asks the project guard why, inside a transaction.

Revision ID: 7c3d9e51a2b4
Revises: 00148bcb1073
Create Date: 2026-11-29 08:05:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "7c3d9e51a2b4"
down_revision: str | None = "00148bcb1073"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        create function shots.next_shot_index(p_project uuid, p_owner uuid) returns integer
        language plpgsql volatile
        as $$
        begin
            perform 1 from shots.project_replica
                where id = p_project and owner_id = p_owner and deleted_at is null
                for update;
            if not found then
                return null;
            end if;
            return (
                select coalesce(max(order_index) + 1, 0) from shots.shot
                where project_id = p_project
            );
        end
        $$
        """
    )


def downgrade() -> None:
    op.execute("drop function shots.next_shot_index(uuid, uuid)")
