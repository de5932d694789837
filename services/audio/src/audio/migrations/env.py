from audio.models import Base
from storycore_shared.migrations import run_alembic_env

run_alembic_env(Base.metadata)
