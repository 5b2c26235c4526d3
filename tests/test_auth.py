"""The gateway's credential and the roles it carries (shared/auth.py), without I/O."""

import uuid

import pytest

from shared.auth import Caller, CredentialSigner, CredentialVerifier, Role
from shared.errors import Forbidden, Unauthorized

A, B = uuid.uuid4(), uuid.uuid4()
K1, OLD, NEW = ("k1-" + "x" * 40), ("old-" + "y" * 40), ("new-" + "z" * 40)


def test_roles_are_ordered():
    assert Role.ADMIN.covers(Role.APPROVER) and Role.APPROVER.covers(Role.EDITOR)
    assert Role.EDITOR.covers(Role.VIEWER) and not Role.EDITOR.covers(Role.APPROVER)


def test_a_platform_role_holds_in_every_project_and_a_membership_raises_it_in_one():
    caller = Caller("dana", Role.VIEWER, {A: Role.APPROVER})
    assert caller.role_in(A) == Role.APPROVER and caller.role_in(B) == Role.VIEWER
    assert caller.visible_projects is None


def test_a_member_sees_only_their_projects():
    caller = Caller("erin", None, {A: Role.EDITOR})
    assert caller.role_in(A) == Role.EDITOR and caller.role_in(B) is None
    assert caller.visible_projects == {A}
    caller.require(A, Role.EDITOR)
    with pytest.raises(Forbidden) as refused:
        caller.require(A, Role.APPROVER)
    assert refused.value.extensions["required_role"] == "approver"
    with pytest.raises(Forbidden):
        caller.require(B, Role.VIEWER)


def test_a_token_limited_to_projects_bounds_its_platform_role():
    caller = Caller("ci", Role.ADMIN, projects=frozenset({A}))
    assert caller.role_in(A) == Role.ADMIN and caller.role_in(B) is None
    assert caller.visible_projects == {A} and not caller.is_platform_admin
    assert caller.scope(None) == {A} and caller.scope(B) == ()


def test_a_signed_credential_carries_the_caller():
    caller = Caller("dana", Role.VIEWER, {A: Role.ADMIN}, frozenset({A, B}), uuid.uuid4())
    verified = CredentialVerifier([K1]).verify(CredentialSigner([K1]).sign(caller))
    assert verified == caller


def test_every_listed_key_verifies_and_the_first_signs():
    old, new = OLD, NEW
    during = CredentialVerifier([new, old])
    assert during.verify(CredentialSigner([old]).sign(Caller("a"))).subject == "a"
    assert during.verify(CredentialSigner([new, old]).sign(Caller("b"))).subject == "b"
    with pytest.raises(Unauthorized):
        CredentialVerifier([new]).verify(CredentialSigner([old]).sign(Caller("c")))


def test_an_expired_credential_is_refused():
    signer = CredentialSigner([K1])
    with pytest.raises(Unauthorized):
        CredentialVerifier([K1]).verify(signer.sign(Caller("a"), lifetime_seconds=-1))
