import ProvisionPluginAPI

/// The tuning steps: what a passthrough guest wants once it works (pinned cores, huge pages, a
/// shared-memory framebuffer).
public let tuningSteps: [any StepPlugin] = [CPUPinning(), Hugepages(), LookingGlass()]
