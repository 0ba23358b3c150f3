"""The seed tutorial's (claude-sdk-rs "Session Management") examples, translated to Python.

Each test follows one section of ``seed-session-management.md``; sessions are stored for real
(directory, SQLite, memory). The Client parts live with the client's tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from claude_magic import (
    Session,
    SessionBuilder,
    SessionId,
    SessionManager,
    SessionNotFound,
    StorageBackend,
)
from claude_magic.errors import ClaudeMagicError

from .conftest import backend_for


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The seed uses relative paths such as ./sessions: run each example in a temp dir."""
    monkeypatch.chdir(tmp_path)


def test_overview_file_storage_with_metadata() -> None:
    manager = SessionManager.with_storage(StorageBackend.file("./sessions"))
    session = (manager.create_session()
               .with_system_prompt("You are a helpful Rust programming assistant")
               .with_metadata("project", "my-rust-app")
               .build())
    assert Path(f"./sessions/{session.id}.json").is_file()
    assert manager.resume(session.id).metadata == {"project": "my-rust-app"}


def test_session_id_and_session_types() -> None:
    session_id = SessionId("my-session-001")
    assert session_id == "my-session-001" and isinstance(session_id, str)
    session = (SessionBuilder()
               .with_system_prompt("You are a code review assistant")
               .with_metadata("language", "rust")
               .with_metadata("project", "web-api")
               .build())
    assert isinstance(session, Session) and isinstance(session.id, SessionId)
    assert session.metadata == {"language": "rust", "project": "web-api"}
    assert session.created_at.tzinfo is not None


def test_manager_initialization() -> None:
    memory_manager = SessionManager()
    file_manager = SessionManager.with_storage(StorageBackend.file(Path("./my-sessions")))
    sqlite_manager = SessionManager.with_storage(StorageBackend.sqlite(Path("sessions.db")))
    assert memory_manager.location == "memory"
    assert Path("my-sessions").is_dir() and Path("sessions.db").is_file()  # created when missing
    for manager in (memory_manager, file_manager, sqlite_manager):
        assert manager.list() == []
        manager.close()


@pytest.mark.parametrize("kind", ["memory", "directory", "sqlite"])
def test_creating_and_managing_sessions(kind: str, tmp_path: Path) -> None:
    manager = SessionManager.with_storage(backend_for(kind, tmp_path))
    session = (manager.create_session()
               .with_system_prompt("You are a helpful geography teacher")
               .with_metadata("subject", "geography")
               .with_metadata("level", "beginner")
               .build())
    session_ids = manager.list()
    assert len(session_ids) == 1
    retrieved = manager.get(session.id)
    assert retrieved is not None
    assert retrieved.system_prompt == "You are a helpful geography teacher"
    resumed = manager.resume(session.id)
    assert resumed.id == session.id
    assert resumed.metadata == {"subject": "geography", "level": "beginner"}


def test_session_builder_patterns() -> None:
    standalone = (SessionBuilder()
                  .with_system_prompt("You are a code reviewer")
                  .with_metadata("type", "code-review")
                  .build())
    custom_id_session = (SessionBuilder.with_id("review-2024-001")
                         .with_system_prompt("You are reviewing authentication code")
                         .with_metadata("module", "auth")
                         .build())
    manager = SessionManager()
    managed = (manager.create_session()
               .with_system_prompt("You are a data analyst")
               .with_metadata("role", "analyst")
               .build())
    assert custom_id_session.id == "review-2024-001"
    assert custom_id_session.metadata == {"module": "auth"}
    assert standalone.id != managed.id
    assert manager.list() == [managed.id]  # only the managed one is stored
    # what the seed could not do: a custom id stored by the manager
    stored = manager.create_session("review-2024-001").with_system_prompt("stored").build()
    assert manager.resume("review-2024-001").system_prompt == stored.system_prompt


def test_file_storage_survives_a_restart() -> None:
    def setup_file_storage() -> SessionManager:
        return SessionManager.with_storage(StorageBackend.file(Path("./project-sessions")))

    manager = setup_file_storage()
    session = manager.create_session().with_system_prompt("You are a project assistant").build()
    assert Path(f"./project-sessions/{session.id}.json").is_file()
    manager.close()
    restarted = setup_file_storage()
    retrieved = restarted.get(session.id)
    assert retrieved is not None and retrieved.system_prompt == "You are a project assistant"


def test_sqlite_storage() -> None:
    manager = SessionManager.with_storage(StorageBackend.sqlite(Path("sessions.db")))
    session = manager.create_session().with_system_prompt("You are a database consultant").build()
    assert manager.list() == [session.id]
    manager.close()
    assert SessionManager.with_storage("sqlite:///sessions.db").list() == [session.id]


class SessionLifecycleManager:
    """The seed's lifecycle helper, over a file store."""

    def __init__(self) -> None:
        self.manager = SessionManager.with_storage(StorageBackend.file("./sessions"))

    def cleanup_all_sessions(self) -> int:
        count = len(self.manager.list())
        self.manager.clear()
        return count

    def delete_specific_session(self, session_id: SessionId) -> None:
        self.manager.delete(session_id)

    def session_exists(self, session_id: SessionId) -> bool:
        return self.manager.get(session_id) is not None


def test_session_lifecycle() -> None:
    lifecycle = SessionLifecycleManager()
    session1 = lifecycle.manager.create_session().with_system_prompt("Test session 1").build()
    session2 = lifecycle.manager.create_session().with_system_prompt("Test session 2").build()
    assert lifecycle.session_exists(session1.id)
    lifecycle.delete_specific_session(session1.id)
    assert not lifecycle.session_exists(session1.id)
    assert lifecycle.session_exists(session2.id)
    assert lifecycle.cleanup_all_sessions() == 1
    assert lifecycle.manager.list() == []
    assert list(Path("sessions").glob("*.json")) == []


class SessionPool:
    """One session per context, recreated if it disappeared (manager only, no client)."""

    def __init__(self, manager: SessionManager) -> None:
        self.manager = manager
        self.sessions: dict[str, SessionId] = {}

    def get_or_create_session(self, context: str) -> SessionId:
        session_id = self.sessions.get(context)
        if session_id is not None and self.manager.get(session_id) is not None:
            return session_id
        session = (self.manager.create_session()
                   .with_system_prompt(f"You are working in the {context} context")
                   .with_metadata("context", context)
                   .build())
        self.sessions[context] = session.id
        return session.id


def test_session_pool() -> None:
    pool = SessionPool(SessionManager())
    rust = pool.get_or_create_session("rust-learning")
    planning = pool.get_or_create_session("project-planning")
    assert pool.get_or_create_session("rust-learning") == rust
    assert rust != planning
    assert pool.manager.find(context="project-planning") == [planning]
    assert pool.manager.resume(rust).system_prompt == "You are working in the rust-learning context"
    pool.manager.delete(rust)  # gone from the store: the pool makes a new one
    replacement = pool.get_or_create_session("rust-learning")
    assert replacement != rust and pool.manager.count() == 2


class SessionTemplate:
    def __init__(self, name_prefix: str, system_prompt: str) -> None:
        self.name_prefix = name_prefix
        self.system_prompt_template = system_prompt
        self.default_metadata: dict[str, Any] = {}

    def with_metadata(self, metadata: dict[str, Any]) -> SessionTemplate:
        self.default_metadata = metadata
        return self

    def create_session(self, manager: SessionManager, suffix: str) -> Session:
        prompt = self.system_prompt_template.replace("{suffix}", suffix)
        builder = manager.create_session(f"{self.name_prefix}_{suffix}").with_system_prompt(prompt)
        for key, value in self.default_metadata.items():
            builder = builder.with_metadata(key, value)
        builder = builder.with_metadata("template", self.name_prefix)
        builder = builder.with_metadata("suffix", suffix)
        return builder.build()


def test_session_templates() -> None:
    manager = SessionManager()
    code_review = SessionTemplate(
        "code_review", "You are reviewing {suffix} code for best practices and security"
    ).with_metadata({"type": "code-review", "automated": False})
    learning = SessionTemplate(
        "learning", "You are teaching about {suffix} to a beginner"
    ).with_metadata({"type": "education", "level": "beginner"})
    review = code_review.create_session(manager, "authentication")
    lesson = learning.create_session(manager, "async_rust")
    assert review.id == "code_review_authentication"
    assert lesson.id == "learning_async_rust"
    assert manager.resume(review.id).system_prompt == (
        "You are reviewing authentication code for best practices and security")
    assert manager.resume(lesson.id).metadata == {
        "type": "education", "level": "beginner", "template": "learning", "suffix": "async_rust"}
    with pytest.raises(ClaudeMagicError):  # the same template and suffix twice: SessionExists
        code_review.create_session(manager, "authentication")


def test_error_handling() -> None:
    manager = SessionManager()
    manager.create_session().with_system_prompt("Test session").build()
    fake_id = SessionId("non-existent-session")
    assert manager.get(fake_id) is None
    try:
        manager.resume(fake_id)
    except SessionNotFound as error:
        assert error.session_id == fake_id
        replacement = manager.create_session().with_system_prompt("Replacement session").build()
    else:  # pragma: no cover - resume must raise
        pytest.fail("resume of a missing session did not raise")
    assert manager.resume(replacement.id).system_prompt == "Replacement session"
    session_ids = manager.list()
    assert len(session_ids) == 2
    for session_id in session_ids:
        manager.delete(session_id)
    assert manager.list() == []


def test_best_practices_cleanup_and_descriptive_metadata() -> None:
    manager = SessionManager()
    session = (manager.create_session()
               .with_system_prompt("You are a code reviewer")
               .with_metadata("project", "web-api")
               .with_metadata("language", "rust")
               .with_metadata("created_by", "alice")
               .with_metadata("purpose", "security-review")
               .build())
    assert manager.find(created_by="alice", purpose="security-review") == [session.id]
    for _ in range(100):
        manager.create_session().build()
    if len(manager.list()) > 100:  # the seed's cleanup_old_sessions
        manager.clear()
    assert manager.count() == 0


def test_batch_operations() -> None:
    manager = SessionManager()
    sessions = [manager.create_session().with_system_prompt(f"Session {i}").build()
                for i in range(10)]
    session_ids = manager.list()
    assert len(session_ids) == len(sessions)
    assert session_ids == [s.id for s in reversed(sessions)]  # newest first
    for session_id in session_ids[:5]:
        session = manager.get(session_id)
        assert session is not None and session.system_prompt.startswith("Session ")
