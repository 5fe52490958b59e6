// Subcommands of the `tidal` command-line tool. Each command lives in its own file and
// registers itself with TIDAL_CLI_COMMAND, so adding one touches no other file.
#pragma once
#include <string>
#include <vector>

#include "cli_arguments.h"

namespace tidal::cli {

struct Command {
  std::string name;
  std::string summary;             // one line for `tidal help`
  std::string usage;               // the options, for `tidal <name> --help`
  std::vector<std::string> flags;  // options that take no value
  int (*run)(Arguments& arguments);
};

void register_command(const Command& command);
const std::vector<Command>& commands();

struct CommandRegistrar {
  explicit CommandRegistrar(const Command& command) { register_command(command); }
};

}  // namespace tidal::cli

#define TIDAL_CLI_COMMAND(identifier, ...) \
  static ::tidal::cli::CommandRegistrar tidal_cli_command_##identifier(::tidal::cli::Command{__VA_ARGS__})
