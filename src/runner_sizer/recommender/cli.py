"""`runner-sizer-recommender`: validate settings, then serve."""

from __future__ import annotations

import sys

from runner_sizer.observability.logs import configure_logging
from runner_sizer.options import OptionError, setting
from runner_sizer.recommender.server import RecommenderServer
from runner_sizer.recommender.settings import ENV_PREFIX, load_settings


def main(argv: list[str] | None = None) -> int:
    try:
        settings = load_settings(sys.argv[1:] if argv is None else argv)
        token_file = settings.read_token_file
        if token_file is not None and not token_file.read_text().strip():
            raise OptionError(f"{setting(ENV_PREFIX, 'read-token-file')}: {token_file} is empty")
    except OptionError as error:
        print(f"runner-sizer-recommender: invalid configuration: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    RecommenderServer(settings).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
