import ProvisionPluginAPI

/// The generic file steps every recipe (and every other plugin's tests) can use.
public let fileSteps: [any StepPlugin] = [FileContent(), FileLine(), FileBlock(), FileAbsent()]
