#!/bin/sh
# Runs once, when the postgres:16 container initialises an empty volume: one login role per
# service, owning the schema of the same name and nothing else. Passwords come from the
# environment (<SERVICE>_DB_PASSWORD); psql variables quote them safely.
set -eu

for service in auth projects shots locations llm sequences audio video_editor; do
  variable="$(echo "$service" | tr '[:lower:]' '[:upper:]')_DB_PASSWORD"
  password="$(printenv "$variable")"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v role="$service" -v password="$password" -v database="$POSTGRES_DB" <<'SQL'
create role :"role" with login password :'password';
create schema :"role" authorization :"role";
revoke all on schema :"role" from public;
grant connect on database :"database" to :"role";
SQL
done

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -c "revoke create on schema public from public"
