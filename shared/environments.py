"""The environments every service knows: jobs, GPU types and integration backends are per env."""

from enum import StrEnum


class Env(StrEnum):
    DEV = "dev"
    STG = "stg"
    PROD = "prod"
