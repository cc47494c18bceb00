"""The development stack behind `make run` and `make test`: RabbitMQ, the embedded store,
the SMS gateway simulator, the four services and the nginx edge proxy, each a real process.

    __main__   `python -m hocvu_tools.devstack run | ensure-broker`: the launcher
    config     ports, external servers and the national-ID hash key, from the environment
    stack      the simulator, the four `nameko run` processes and nginx (also the e2e tests')
    rabbitmq   the shared broker (reused, or installed and started) and private test nodes
    store      SecantusDB as a child process
    proxy      nginx from deploy/nginx/hocvu.conf.template
    processes  child processes: logs, readiness, stopping by PID
    system     Debian packages and commands

Runtime data lives under var/ (or $HOCVU_VAR_DIR): store/, log/, run/, secrets.env.
Never imported by service code; production runs each service alone (deploy/README.md).
"""
