dist_man_MANS = man/speedmimi.8
