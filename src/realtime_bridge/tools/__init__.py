"""Server-side tools: functions the operator defines in the policy file, which the bridge runs
itself when the model calls them (a webhook or a Python callable), hidden from the client unless
the tool is ``visible``. Self-contained: nothing here knows about sessions or the protocol; the
session hands a :class:`ToolCall` to a :class:`ToolRunner` and relays the :class:`ToolResult`.
"""

from realtime_bridge.tools.runner import ToolCall, ToolResult, ToolRunner
from realtime_bridge.tools.spec import ToolSpec

__all__ = ["ToolCall", "ToolResult", "ToolRunner", "ToolSpec"]
