from crossbook_ext.fanout import Channel as Channel
from crossbook_ext.fanout import Frame as Frame
from crossbook_ext.fanout import Subscriber as Subscriber
