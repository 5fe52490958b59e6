// `tidal`: the engine as a command-line tool. `tidal help` lists the commands.
#include <cstdio>
#include <string>
#include <vector>

#include "cli_command.h"
#include "tidal/error.h"

namespace tidal::cli {

namespace {

std::vector<Command>& registry() {
  static std::vector<Command> all;
  return all;
}

void print_help() {
  std::printf("usage: tidal <command> [options]\n\ncommands:\n");
  for (const Command& command : commands()) std::printf("  %-12s %s\n", command.name.c_str(), command.summary.c_str());
  std::printf("\n`tidal <command> --help` lists a command's options.\n");
}

}  // namespace

void register_command(const Command& command) { registry().push_back(command); }
const std::vector<Command>& commands() { return registry(); }

}  // namespace tidal::cli

int main(int argc, char** argv) {
  using namespace tidal::cli;
  if (argc < 2 || std::string(argv[1]) == "help" || std::string(argv[1]) == "--help") {
    print_help();
    return argc < 2 ? 2 : 0;
  }
  const std::string name = argv[1];
  const Command* command = nullptr;
  for (const Command& c : commands())
    if (c.name == name) command = &c;
  if (!command && name == "eval") {
    // The evaluation runs where the model's own tokenizer is: the Node entry (src/eval/).
    std::fprintf(stderr,
                 "tidal: `tidal eval` is now `node dist/tidal-eval.js` (npm run eval -- OPTIONS), "
                 "with the same options; build it with `npm run build`\n");
    return 2;
  }
  if (!command) {
    std::fprintf(stderr, "tidal: unknown command '%s'\n\n", name.c_str());
    print_help();
    return 2;
  }
  std::vector<std::string> rest(argv + 2, argv + argc);
  if (!rest.empty() && (rest[0] == "--help" || rest[0] == "-h")) {
    std::printf("usage: tidal %s %s\n", command->name.c_str(), command->usage.c_str());
    return 0;
  }
  try {
    Arguments arguments(rest, command->flags);
    return command->run(arguments);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "tidal %s: %s\nusage: tidal %s %s\n", name.c_str(), e.what(), name.c_str(),
                 command->usage.c_str());
    return 2;
  } catch (const tidal::Error& e) {
    std::fprintf(stderr, "tidal %s: %s\n", name.c_str(), e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tidal %s: unexpected error: %s\n", name.c_str(), e.what());
    return 1;
  }
}
