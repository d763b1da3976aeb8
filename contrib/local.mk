EXTRA_DIST += contrib/run-demo.sh contrib/speedmimi.service contrib/speedmimi.init contrib/Dockerfile
