"""The mutating admission webhook for GitLab Runner job pods."""
