speedmimiconfdir = $(sysconfdir)/speedmimi
dist_speedmimiconf_DATA = conf/speedmimi.yaml
EXTRA_DIST += conf/demo.yaml

# `make demo`: speedmimi in the foreground with conf/demo.yaml in front of two demo backends.
# exec: make sends its TERM to its child, so the child must be the script (which stops all three
# processes), not a shell that would die and leave it running.
demo: src/speedmimi t/helpers/demo_backend
	@exec $(top_srcdir)/contrib/run-demo.sh "$(abs_top_builddir)" "$(abs_top_srcdir)"
.PHONY: demo
