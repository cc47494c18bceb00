"""The development stack behind `make run` and `make test`: RabbitMQ, the embedded store,
the SMS gateway simulator, the four services and the nginx edge proxy, each a real process.

Never imported by service code; production runs each service alone (deploy/README.md).
"""
