#include "http/real_ip.h"

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

namespace speedmimi::http {
namespace {

core::IpAddress ip(std::string_view text) {
  const std::optional<core::IpAddress> parsed = core::IpAddress::parse(text);
  EXPECT_TRUE(parsed.has_value()) << text;
  return parsed.value_or(core::IpAddress{});
}

std::vector<core::Cidr> cidrs(std::initializer_list<std::string_view> texts) {
  std::vector<core::Cidr> out;
  for (std::string_view text : texts) {
    const std::optional<core::Cidr> parsed = core::Cidr::parse(text);
    EXPECT_TRUE(parsed.has_value()) << text;
    if (parsed) out.push_back(*parsed);
  }
  return out;
}

const std::vector<core::Cidr>& trusted() {
  static const std::vector<core::Cidr> blocks =
      cidrs({"127.0.0.1/32", "10.0.0.0/8", "::1/128", "fd00::/8"});
  return blocks;
}

struct Case {
  const char* name;
  const char* peer;
  std::string_view real_ip_header;
  std::vector<Header> headers;
  const char* expected;
};

// Names the case in failure messages instead of dumping its bytes.
void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name;
}

class RealIpTest : public ::testing::TestWithParam<Case> {};

TEST_P(RealIpTest, Resolves) {
  const Case& c = GetParam();
  const core::IpAddress got =
      resolveRealIp(ip(c.peer), c.headers.data(), c.headers.size(), c.real_ip_header, trusted());
  EXPECT_EQ(got.toString(), c.expected);
}

const Header kOther{"Accept", "*/*"};

INSTANTIATE_TEST_SUITE_P(
    Cases, RealIpTest,
    ::testing::Values(
        // The header is believed only from a trusted peer.
        Case{"untrusted_peer_real_ip",
             "127.0.0.2",
             "X-Real-IP",
             {{"X-Real-IP", "127.0.0.9"}},
             "127.0.0.2"},
        Case{"untrusted_peer_xff",
             "127.0.0.2",
             "X-Forwarded-For",
             {{"X-Forwarded-For", "127.0.0.9"}},
             "127.0.0.2"},
        Case{"header_disabled", "127.0.0.1", "", {{"X-Real-IP", "127.0.0.9"}}, "127.0.0.1"},
        Case{"header_absent", "127.0.0.1", "X-Real-IP", {kOther}, "127.0.0.1"},
        Case{"no_headers", "127.0.0.1", "X-Forwarded-For", {}, "127.0.0.1"},
        // A single-address header.
        Case{
            "real_ip", "127.0.0.1", "X-Real-IP", {kOther, {"x-real-ip", "127.0.0.9"}}, "127.0.0.9"},
        Case{"real_ip_trusted_value_still_taken",
             "127.0.0.1",
             "X-Real-IP",
             {{"X-Real-IP", "10.1.2.3"}},
             "10.1.2.3"},
        Case{"real_ip_padded",
             "127.0.0.1",
             "X-Real-IP",
             {{"X-Real-IP", " 127.0.0.9\t"}},
             "127.0.0.9"},
        Case{"real_ip_garbage", "127.0.0.1", "X-Real-IP", {{"X-Real-IP", "unknown"}}, "127.0.0.1"},
        Case{"real_ip_list_is_garbage",
             "127.0.0.1",
             "X-Real-IP",
             {{"X-Real-IP", "127.0.0.9, 127.0.0.8"}},
             "127.0.0.1"},
        Case{"real_ip_with_port",
             "127.0.0.1",
             "X-Real-IP",
             {{"X-Real-IP", "127.0.0.9:5678"}},
             "127.0.0.9"},
        Case{"real_ip_bad_port",
             "127.0.0.1",
             "X-Real-IP",
             {{"X-Real-IP", "127.0.0.9:http"}},
             "127.0.0.1"},
        Case{"real_ip_v6_bracketed_port",
             "::1",
             "X-Real-IP",
             {{"X-Real-IP", "[2001:db8::7]:443"}},
             "2001:db8::7"},
        Case{"custom_header_name",
             "127.0.0.1",
             "CF-Connecting-IP",
             {{"X-Real-IP", "127.0.0.8"}, {"cf-connecting-ip", "127.0.0.9"}},
             "127.0.0.9"},
        // X-Forwarded-For walks from the right past trusted hops.
        Case{"xff_single",
             "127.0.0.1",
             "X-Forwarded-For",
             {{"X-Forwarded-For", "127.0.0.9"}},
             "127.0.0.9"},
        Case{"xff_name_case",
             "127.0.0.1",
             "x-forwarded-for",
             {{"X-FORWARDED-FOR", "127.0.0.7, 127.0.0.9"}},
             "127.0.0.9"},
        Case{"xff_spoofed_left_ignored",
             "127.0.0.1",
             "X-Forwarded-For",
             {{"X-Forwarded-For", "127.0.0.66, 127.0.0.9, 10.0.0.2, 10.9.9.9"}},
             "127.0.0.9"},
        Case{"xff_all_trusted_takes_leftmost",
             "127.0.0.1",
             "X-Forwarded-For",
             {{"X-Forwarded-For", "10.0.0.3, 10.0.0.2,10.0.0.1"}},
             "10.0.0.3"},
        Case{"xff_garbage_stops_at_last_good",
             "127.0.0.1",
             "X-Forwarded-For",
             {{"X-Forwarded-For", "127.0.0.9, bogus, 10.0.0.2"}},
             "10.0.0.2"},
        Case{"xff_garbage_rightmost_gives_peer",
             "127.0.0.1",
             "X-Forwarded-For",
             {{"X-Forwarded-For", "127.0.0.9, unknown"}},
             "127.0.0.1"},
        Case{"xff_empty_elements_skipped",
             "127.0.0.1",
             "X-Forwarded-For",
             {{"X-Forwarded-For", "127.0.0.9,, 10.0.0.2 ,"}},
             "127.0.0.9"},
        Case{"xff_empty_value",
             "127.0.0.1",
             "X-Forwarded-For",
             {{"X-Forwarded-For", ""}},
             "127.0.0.1"},
        Case{"xff_ports_stripped",
             "127.0.0.1",
             "X-Forwarded-For",
             {{"X-Forwarded-For", "127.0.0.9:5678, 10.0.0.2:80"}},
             "127.0.0.9"},
        Case{"xff_v6_peer_and_entries",
             "::1",
             "X-Forwarded-For",
             {{"X-Forwarded-For", "2001:db8::9, [fd00::2]:8443, fd12::1"}},
             "2001:db8::9"},
        Case{"xff_v6_bracketed_untrusted",
             "::1",
             "X-Forwarded-For",
             {{"X-Forwarded-For", "[2001:db8::9]:443"}},
             "2001:db8::9"},
        Case{"xff_v4_mapped_entry_is_trusted",
             "::1",
             "X-Forwarded-For",
             {{"X-Forwarded-For", "127.0.0.9, ::ffff:10.0.0.2"}},
             "127.0.0.9"},
        Case{"xff_unclosed_bracket",
             "::1",
             "X-Forwarded-For",
             {{"X-Forwarded-For", "127.0.0.9, [2001:db8::9"}},
             "::1"},
        Case{"xff_v6_peer_untrusted",
             "2001:db8::1",
             "X-Forwarded-For",
             {{"X-Forwarded-For", "127.0.0.9"}},
             "2001:db8::1"},
        Case{"xff_lines_form_one_list",
             "127.0.0.1",
             "X-Forwarded-For",
             {{"X-Forwarded-For", "127.0.0.8, 127.0.0.9"},
              kOther,
              {"X-Forwarded-For", "10.0.0.2, 10.0.0.3"}},
             "127.0.0.9"},
        Case{"xff_lines_all_trusted",
             "127.0.0.1",
             "X-Forwarded-For",
             {{"X-Forwarded-For", "10.0.0.1"}, {"X-Forwarded-For", "10.0.0.2"}},
             "10.0.0.1"},
        Case{"xff_garbage_line_stops",
             "127.0.0.1",
             "X-Forwarded-For",
             {{"X-Forwarded-For", "127.0.0.9"}, {"X-Forwarded-For", "nope, 10.0.0.2"}},
             "10.0.0.2"}),
    [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace speedmimi::http
