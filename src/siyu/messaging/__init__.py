"""Outbound messages (触达): the message queue that journeys, guides and operators write to, the
policies checked at the moment of sending, and the channel adapters that deliver."""
