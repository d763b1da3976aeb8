speedmimiconfdir = $(sysconfdir)/speedmimi
dist_speedmimiconf_DATA = conf/speedmimi.yaml
EXTRA_DIST += conf/demo.yaml

# `make demo`: speedmimi in the foreground with conf/demo.yaml in front of two demo backends.
demo: src/speedmimi t/helpers/demo_backend
	@$(top_srcdir)/contrib/run-demo.sh "$(abs_top_builddir)" "$(abs_top_srcdir)"
.PHONY: demo
