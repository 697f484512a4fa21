"""runner-sizer: right-size and cache-place GitLab Runner job pods."""
