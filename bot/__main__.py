"""``python -m bot <rasa arguments>``: the ``rasa`` command without known library warnings.

``scripts/run.sh`` starts the Rasa server this way; see :mod:`bot.quiet`.
"""

from bot.quiet import main

main()
