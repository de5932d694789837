from storycore_shared.migrations import run_alembic_env
from video_editor.models import Base

run_alembic_env(Base.metadata)
